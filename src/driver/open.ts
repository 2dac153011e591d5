/**
 * openConnection(uri): the one entry point from a URI to a Connection.
 * (Being implemented: this stub fixes the signature for the CLI.)
 */
import type { Connection } from './connection.js';
import { VirtError } from '../errors.js';

export async function openConnection(uri?: string): Promise<Connection> {
  throw new VirtError('NO_CONNECT', `no connection driver available for ${uri ?? ''} (driver being implemented)`);
}
