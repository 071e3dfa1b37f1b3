export { runQuery, DEFAULT_QUERY_ENDPOINT } from './commands/query.js';
export type { QueryOptions } from './commands/query.js';
export { runReplay } from './commands/replay.js';
export type { ReplayOptions, ReplayResult } from './commands/replay.js';
export { runStart, loadStartConfig } from './commands/start.js';
export { runDemo } from './commands/demo.js';
export { renderTree, auditLine, formatDuration } from './render.js';
export { CliError, EXIT } from './errors.js';
export { DEFAULT_CONFIG, COLLECTOR_CONFIG_DIR } from './paths.js';
