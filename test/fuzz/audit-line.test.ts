import { test } from 'uvu';
import { fuzzSuite } from './suite.js';

fuzzSuite('audit-line', { seed: 20261202, cases: 800, expect: ['accepted', 'rejected'] });

test.run();
