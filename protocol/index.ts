// The contract between agent and gateway: topics, JSON message schemas, activation frames,
// and the rules both sides compute alike.
export * from './topics.js';
export * from './messages.js';
export * from './frame.js';
export * from './bounds.js';
export * from './rules.js';
