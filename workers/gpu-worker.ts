import { runWorkerProcess } from './main';

runWorkerProcess('gpu');
