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
    },
  },
  ...layerRules,
);
