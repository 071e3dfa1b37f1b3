import { test } from 'uvu';
import { fuzzSuite } from './suite.js';

fuzzSuite('admission', { seed: 20261202, cases: 800, expect: ['patched', 'refused', 'owned', 'skipped', 'error'] });

test.run();
