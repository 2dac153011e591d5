export * from './backend.js';
export { SimHost, DEFAULT_SIM_CONFIG, type SimHostConfig } from './sim/host.js';
export { DEFAULT_GUESTS, type FixtureGuest } from './sim/fixtures.js';
