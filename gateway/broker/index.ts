// The embedded MQTT broker: authentication, ACL, flood and size limits.
export * from './acl.js';
export * from './broker.js';
export * from './config.js';
export * from './counters.js';
export * from './credentials.js';
export { FrameGuard, PacketTooLargeError } from './frame-guard.js';
export { connectExternal, safeUrl, type EarlyMessage, type ExternalConnection, type ExternalSecrets } from './external.js';
export { LocalBus } from './local-bus.js';
