// Solves a share of a fleet's chains, as the gateway's re-solve worker would.
import { parentPort, workerData } from 'node:worker_threads';
import { fleetNode } from './solver.js';
import { DeviceModel, PAPER_XI_LIM, limits } from '../gateway/scheduler/index.js';

const { from, to } = workerData as { from: number; to: number };
let sum = 0;
for (let i = from; i < to; i++) sum += limits(new DeviceModel(fleetNode(i)), PAPER_XI_LIM).qLim;
parentPort!.postMessage(sum);
