import { test } from 'uvu';
import { fuzzSuite } from './suite.js';

fuzzSuite('otlp-protobuf', { seed: 20261202, cases: 300, expect: ['accepted', 'refused', 'partial'] });

test.run();
