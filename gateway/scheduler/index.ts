// The scheduler's public surface: pure functions and data, no I/O, no clock.
export * from './types.js';
export * from './harvest.js';
export * from './chain.js';
export * from './stationary.js';
export * from './metrics.js';
export * from './brent.js';
export * from './paper.js';
export * from './policies.js';
export * from './foresight.js';
export * from './view.js';
export * from './sleep.js';

import { adaptive, greedy, longTerm, uniform, type Policy } from './policies.js';
import { foresight } from './foresight.js';

/**
 * Every policy by name: the paper's three, ours, and the baseline ours must beat. Appended
 * only: the simulator seeds each policy's random stream by its place here.
 */
export const POLICIES: Record<string, Policy> = {
  uniform,
  'long-term': longTerm,
  adaptive,
  foresight,
  greedy,
};
