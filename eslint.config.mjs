// Lint fences the deterministic core: workflow code may import only the workflow SDK, the pure
// contracts and types; contracts import nothing with side effects. Everywhere, a promise must be
// awaited or explicitly voided.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

const workflowImports = {
  regex: '^(?!@temporalio/workflow$|(\\.\\./)+src/contracts/|(\\.\\./)+workflows/|\\./)',
  allowTypeImports: true,
  message: 'Workflow code is deterministic: import only @temporalio/workflow, ../src/contracts/** and types (`import type`). Do I/O in an activity.',
};

const contractImports = {
  regex: '^(?!zod$|@temporalio/common$|\\./|\\.\\./(?!\\.\\.))',
  allowTypeImports: true,
  message: 'src/contracts is pure and bundled into workflows: import only zod, @temporalio/common and other contracts.',
};

// Activities reach the world only through ports (deps): no adapters, CLI or config modules, no
// environment. (artifact-common is the local-file digest helpers, not a system.)
const activityImports = {
  regex: '^(\\.\\./)+src/(adapters/(?!artifact-common$)|cli/|config/)',
  allowTypeImports: false,
  message: 'Activities depend on ports only: take the adapter through ActivityDeps (activities/deps.ts), built by workers/build.ts.',
};

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', '.venv/', '**/.venv*/', '.forgeline/', 'bench/results/', '**/*.mjs', '**/*.cjs', 'test/.tmp/', 'bench/.tmp/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: { ...globals.node, ...globals.mocha },
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
    },
  },
  {
    // Tests poke at untyped wire payloads (W&B, S3 listings).
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    files: ['workflows/**/*.ts', 'test/fixtures/workflows/**/*.ts'],
    languageOptions: { globals: {} },
    rules: {
      '@typescript-eslint/no-restricted-imports': ['error', { patterns: [workflowImports] }],
      'no-restricted-globals': ['error', 'process', 'require', 'setTimeout', 'setInterval', 'Buffer', '__dirname'],
    },
  },
  {
    files: ['src/contracts/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': ['error', { patterns: [contractImports] }],
      'no-restricted-globals': ['error', 'process', 'require', 'setTimeout', 'setInterval', 'Buffer', '__dirname'],
    },
  },
  {
    files: ['activities/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': ['error', { patterns: [activityImports] }],
      'no-restricted-properties': ['error', { object: 'process', property: 'env', message: 'Activities never read the environment: config comes through ActivityDeps.' }],
    },
  },
);
