// The registry behind `heliomesh bench <name>`. Each benchmark lives in its own file.
import { agentBench } from './agent.js';
import { brokerBench } from './broker.js';
import { gatewayBench } from './gateway.js';
import { modelBench } from './model.js';
import { pipelineBench } from './pipeline.js';
import { simBench } from './sim.js';
import { solverBench } from './solver.js';
import type { Bench } from './types.js';

export const benches: Record<string, Bench> = {
  agent: agentBench,
  broker: brokerBench,
  gateway: gatewayBench,
  model: modelBench,
  pipeline: pipelineBench,
  sim: simBench,
  solver: solverBench,
};
