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

import { adaptive, longTerm, uniform, type Policy } from './policies.js';
import { foresight } from './foresight.js';

/** Every policy by name: the paper's three and ours. */
export const POLICIES: Record<string, Policy> = {
  uniform,
  'long-term': longTerm,
  adaptive,
  foresight,
};
