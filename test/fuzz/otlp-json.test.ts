import { test } from 'uvu';
import { fuzzSuite } from './suite.js';

fuzzSuite('otlp-json', { seed: 20261202, cases: 300, expect: ['accepted', 'refused', 'not JSON', 'all rejected'] });

test.run();
