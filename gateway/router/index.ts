// The job router: the model's head at the gateway, the live scheduler, and the jobs that
// run through the fleet's groups (docs/gateway.md, "Jobs").
export { GatewayModel, type GatewayModelParts, type ModelGroup } from './model.js';
export { SchedulerService, type Pick } from './scheduler.js';
export { Router, type RouterConfig, type RouterDeps, type RouterStats } from './router.js';
export type { RouterSettings } from './remote-stage.js';
