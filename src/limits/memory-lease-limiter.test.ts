import { defineLeaseLimiterContractTests } from './lease-limiter.contract.js';
import { createMemoryLeaseLimiter } from './memory-lease-limiter.js';

defineLeaseLimiterContractTests('memory', () => createMemoryLeaseLimiter());
