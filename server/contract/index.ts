/**
 * The REST contract, one place for both sides: every view the server sends under `/api` (and the
 * SSE events of a search), and the zod schema of every request it checks. The server's routes
 * build these views and parse with these schemas; the CLI's client (cli/) and the web UI
 * (server/ui/, as types only, so nothing here reaches the browser bundle) read them. docs/api.md
 * documents the same shapes for people.
 */
export * from './access.ts';
export * from './devices.ts';
export * from './models.ts';
export * from './search-events.ts';
export * from './searches.ts';
export * from './tables.ts';
