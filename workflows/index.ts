export { stackCheckWorkflow, stackCheckStatusQuery, type StackCheckStatus } from './stack-check';
export {
  modelReleaseWorkflow,
  releaseRollbackWorkflow,
  statusQuery,
  approveUpdate,
  rejectUpdate,
  abortUpdate,
  pauseUpdate,
  resumeUpdate,
  promoteNowUpdate,
  rollbackUpdate,
  type ReleaseResult,
} from './release';
export { driftMonitorWorkflow, driftStatusQuery, stopMonitorUpdate } from './drift-monitor';
export { reembedCorpusWorkflow, progressQuery as reembedProgressQuery } from './reembed';
export { embeddingDriftWorkflow } from './embedding-drift';
export { scheduledRetrainWorkflow } from './scheduled-retrain';
export { promptReleaseWorkflow, promptStatusQuery } from './prompt-release';
export { gpuAdmissionWorkflow } from './admission';
