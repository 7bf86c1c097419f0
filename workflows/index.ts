export { stackCheckWorkflow, stackCheckStatusQuery, type StackCheckStatus } from './stack-check';
