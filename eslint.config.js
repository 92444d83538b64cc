// ESLint: typescript-eslint's type-aware rules, and the layer rules of the design notes as import
// restrictions, so a wrong import fails `npm run check` (type-only imports included). Import circles are
// checked by scripts/check-cycles.ts. Formatting is Prettier's job, not ESLint's.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { layerRules } from './config/eslint-layers.js';

export default tseslint.config(
  // src/console/ is browser code with a type-check of its own (see its tsconfig).
  { ignores: ['node_modules/', 'data/', 'coverage/', 'test/fixtures/', 'src/console/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // The gateway matches control characters on purpose: it refuses or strips them in agent input.
      'no-control-regex': 'off',
      // `async` marks functions that belong to a Promise-returning interface, awaited or not.
      '@typescript-eslint/require-await': 'off',
    },
  },
  // Tests read JSON answers (supertest's `body` is `any`) and assert on their shape.
  {
    files: ['test/**'],
    rules: {
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
    },
  },
  // Plain JavaScript (tool configs, the bin shim) is not type-checked.
  { files: ['**/*.js'], ...tseslint.configs.disableTypeChecked },
  ...layerRules,
);
