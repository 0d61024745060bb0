/** A callback URL's destination: its origin with the port always written (`https://host:443`). */
export { destinationOf } from '../shared/destination.js';
