import { createMemoryRateLimits } from './memory-limits.js';
import { defineRateLimitsContractTests } from './rate-limits.contract.js';

defineRateLimitsContractTests('memory', () => createMemoryRateLimits());
