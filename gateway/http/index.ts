// The gateway's HTTP API: OpenAI-compatible completions, the fleet's live state, /metrics.
export { HttpApi, type HttpApiDeps } from './server.js';
export { HttpConfigSchema, type HttpConfig, type HttpConfigInput } from './config.js';
export { ApiError } from './errors.js';
export { chatPrompt, CHAT_TURN_STOP } from './openai.js';
export { nodeViews, type GatewaySources, type NodeView } from './views.js';
