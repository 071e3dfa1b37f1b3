// Lint for every workspace: `npm run lint`. Type-aware rules from typescript-eslint, plus the few
// rules STYLE.md asks for (no floating promises, consistent type imports, no console in libraries).
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', '**/*.mjs', '**/*.js'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true }],
      'no-console': 'error',
    },
  },
  { files: ['**/test/**/*.ts', '**/bench/**/*.ts', 'cli/src/**/*.ts', 'fixtures/src/bin.ts'], rules: { 'no-console': 'off' } },
  {
    // The Kafka libraries live behind packages/kafka's interface (its README): nothing else imports them.
    files: ['**/*.ts'],
    ignores: ['packages/kafka/**', 'kafka/**'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: ['kafkajs', '@platformatic/kafka'].map((name) => ({ name, message: 'use @kube-correlate/kafka (createKafkaClient with client: platformatic | kafkajs)' })),
      }],
    },
  },
);
