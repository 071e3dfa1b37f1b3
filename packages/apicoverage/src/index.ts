export type { Endpoint, EndpointMatch, Identity, Level } from './types.js';
