export { stackCheckWorkflow, stackCheckStatusQuery, type StackCheckStatus } from './stack-check';
export { modelReleaseWorkflow, statusQuery, approveUpdate, rejectUpdate, abortUpdate, type ReleaseResult } from './release';
