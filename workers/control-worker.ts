import { runWorkerProcess } from './main';

runWorkerProcess('control');
