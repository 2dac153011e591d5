export * from './types.js';
export { parseDomainXml } from './parse.js';
export { formatDomainXml, type FormatOptions } from './format.js';
export { postParse, type PostParseOptions } from './defaults.js';
