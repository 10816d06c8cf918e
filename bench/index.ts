// The registry behind `heliomesh bench <name>`. Each benchmark lives in its own file and is
// imported only when it runs: several load TF.js, which `heliomesh --help` must not pay for.
import type { Bench } from './types.js';

export const benches: Record<string, () => Promise<Bench>> = {
  agent: async () => (await import('./agent.js')).agentBench,
  broker: async () => (await import('./broker.js')).brokerBench,
  gateway: async () => (await import('./gateway.js')).gatewayBench,
  handover: async () => (await import('./handover.js')).handoverBench,
  model: async () => (await import('./model.js')).modelBench,
  pipeline: async () => (await import('./pipeline.js')).pipelineBench,
  sim: async () => (await import('./sim.js')).simBench,
  solver: async () => (await import('./solver.js')).solverBench,
  startup: async () => (await import('./startup.js')).startupBench,
};
