import { test } from 'uvu';
import { fuzzSuite } from './suite.js';

fuzzSuite('audit-eventlist', { seed: 20261202, cases: 500, expect: ['accepted', 'refused', 'partial'] });

test.run();
