// @ts-check
// Auto-approval policies (admins): the saved rules in the order they are tried (the first that matches
// decides; none: the device stays quarantined), the allowlists they can name, a dry run (of the saved rules,
// or of the saved rules with a new one) showing what it would decide, adding a rule (it is applied to the
// quarantine queue at once, so the confirmation shows that dry run first) and removing one.
/** @import { PolicyJudgement, PolicyRule, PolicyTest } from '../types.js' */
/** @import { ProposedRule } from '../api.js' */
import { addPolicy, listPolicies, removePolicy, rowRef, testPolicies } from '../api.js';
import { openDialog } from '../dialogs.js';
import { h, link } from '../dom.js';
import { fmtDate, text } from '../format.js';
import { load, pageHeader, reload } from '../page.js';
import { alertBox, badge, busy, button, field, section, table } from '../ui.js';

/**
 * What a rule can match (services/policy-engine.ts MATCH_KEYS), with the form's hints. All of a rule's
 * conditions must hold; a rule with none matches every device.
 * @type {{ key: string, label: string, hint: string, placeholder?: string }[]}
 */
const CONDITIONS = [
  { key: 'key', label: 'Registration key', hint: 'the key the device registered with', placeholder: 'site-paris' },
  { key: 'tag', label: 'Tag', hint: "that key's tag (never the agent's)" },
  { key: 'cidr', label: 'Network', hint: 'its last source address', placeholder: '10.1.0.0/16' },
  { key: 'allowlist', label: 'Allowlist', hint: 'its serial, UUID or MAC is on it' },
  { key: 'manufacturer', label: 'Manufacturer', hint: 'as the inventory says', placeholder: 'Dell Inc.' },
  { key: 'model', label: 'Model', hint: 'as the inventory says' },
];
const AGENTS = ['fusioninventory', 'glpi-agent'];
const ACTIONS = /** @type {const} */ (['approve', 'reject', 'quarantine']);

/** @param {Record<string, string>} match */
function matchChips(match) {
  const entries = Object.entries(match);
  if (entries.length === 0) return h('span', { class: 'muted' }, 'every device');
  return h(
    'span',
    { class: 'chips' },
    entries.map(([k, v]) => h('span', { class: 'chip' }, h('span', { class: 'muted' }, `${k} `), v)),
  );
}

/**
 * A saved rule as the dry run takes it.
 * @param {PolicyRule} r
 * @returns {ProposedRule}
 */
const proposed = (r) => ({ action: r.action, match: r.match, ...(r.comment ? { comment: r.comment } : {}) });

/**
 * The dry run's result: the queue (what saving changes now), the recent devices, the warnings.
 * @param {PolicyTest} out
 * @param {(ruleId: number | null) => string} ruleName
 */
function testResult(out, ruleName) {
  /** @param {PolicyJudgement[]} list */
  const devices = (list) =>
    table(
      [
        {
          label: 'Device',
          cell: (d) => link(['devices', rowRef(d.id)], d.name || d.deviceid, { class: 'device-link' }),
        },
        { label: 'Now', cell: (d) => badge(d.state) },
        {
          label: 'Would be',
          cell: (d) =>
            h(
              'span',
              null,
              badge(d.decision, `action-${d.decision}`),
              d.frozen ? h('span', { class: 'muted small' }, ' (a rule approves, but the key is frozen)') : null,
            ),
        },
        { label: 'By', cell: (d) => ruleName(d.ruleId) },
      ],
      list.slice(0, 50),
      'None.',
    );
  const q = out.queue;
  return h(
    'div',
    { class: 'policy-test', role: 'status', tabindex: '-1' },
    h(
      'p',
      { class: 'policy-test-summary' },
      `With ${out.rules} rule${out.rules === 1 ? '' : 's'}: of the ${q.devices} quarantined device${q.devices === 1 ? '' : 's'}, `,
      h('strong', { class: 'would-approve' }, String(q.wouldApprove.length)),
      ' would be approved, ',
      h('strong', { class: 'would-reject' }, String(q.wouldReject.length)),
      ' rejected and ',
      h('strong', { class: 'would-stay' }, String(q.wouldStay)),
      ' stay quarantined.',
    ),
    out.warnings.length
      ? alertBox(
          'info',
          h('strong', null, 'Warnings: '),
          h(
            'ul',
            null,
            out.warnings.map((w) => h('li', null, w)),
          ),
        )
      : null,
    q.wouldApprove.length || q.wouldReject.length
      ? h(
          'div',
          { class: 'test-queue' },
          h('h3', null, 'Quarantine queue'),
          devices([...q.wouldApprove, ...q.wouldReject]),
        )
      : null,
    h(
      'div',
      { class: 'test-recent' },
      h(
        'h3',
        null,
        `First seen in the last ${out.recent.days} day${out.recent.days === 1 ? '' : 's'}: ${out.recent.decisions.length} of ${out.recent.devices} would have been decided otherwise`,
      ),
      out.recent.decisions.length ? devices(out.recent.decisions) : null,
    ),
  );
}

/** @param {HTMLElement} page */
export async function policiesPage(page) {
  page.append(
    pageHeader('Auto-approval policies'),
    h(
      'p',
      { class: 'muted' },
      'Rules are tried in order for every quarantined device as its inventory arrives: the first that matches decides; with none, the device stays quarantined for a person. A MAC address alone never approves.',
    ),
  );
  await load(page, async () => {
    const { rules, allowlists } = await listPolicies();
    /** @param {number | null} ruleId a saved rule's id, or -n for the n-th rule of a proposed set */
    const savedName = (ruleId) => (ruleId === null ? 'no rule' : `rule #${ruleId}`);

    // ---- the saved rules ------------------------------------------------------------------------------
    const rulesTable = table(
      [
        { label: 'Order', class: 'num', cell: (r) => String(r.position) },
        { label: 'Rule', cell: (r) => h('span', { class: 'mono' }, `#${r.id}`) },
        { label: 'Action', cell: (r) => badge(r.action, `action-${r.action}`) },
        { label: 'Matches', cell: (r) => matchChips(r.match) },
        { label: 'Comment', cell: (r) => text(r.comment) },
        {
          label: 'Created',
          cell: (r) => h('span', null, fmtDate(r.createdAt), h('br'), h('span', { class: 'muted small' }, r.createdBy)),
        },
        {
          label: 'Actions',
          class: 'col-actions',
          cell: (r) =>
            button('Remove…', () => confirmRemove(r), 'btn-small btn-danger-outline', {
              'data-action': `remove-${r.id}`,
            }),
        },
      ],
      rules,
      'No rule: every new device waits in the quarantine queue for a person.',
      () => 'policy-rule',
    );

    // ---- dry run of the saved rules -------------------------------------------------------------------
    const days = h('input', { type: 'number', id: 'policy-days', min: '0', max: '3650', step: '1', value: '7' });
    const savedResult = h('div', { id: 'saved-test' });
    /** @type {HTMLButtonElement} */
    const testSaved = button(
      'Dry run the saved rules',
      () =>
        busy(testSaved, savedResult, async () => {
          const out = await testPolicies({ days: Number(days.value || 7) });
          savedResult.replaceChildren(testResult(out, savedName));
        }),
      '',
      { id: 'test-saved' },
    );

    // ---- a new rule: its dry run, then adding it ------------------------------------------------------
    const action = h(
      'select',
      { name: 'action', id: 'policy-action', value: 'approve' },
      ACTIONS.map((a) => h('option', { value: a }, a)),
    );
    /** @type {Record<string, HTMLInputElement>} */
    const inputs = {};
    for (const c of CONDITIONS)
      inputs[c.key] = h('input', {
        name: c.key,
        id: `policy-${c.key}`,
        autocomplete: 'off',
        maxlength: '256',
        placeholder: c.placeholder,
        list: c.key === 'allowlist' ? 'policy-allowlists' : undefined,
      });
    const agent = h(
      'select',
      { name: 'agent', id: 'policy-agent', value: '' },
      h('option', { value: '' }, 'any agent'),
      AGENTS.map((a) => h('option', { value: a }, a)),
    );
    const comment = h('input', { name: 'comment', id: 'policy-comment', maxlength: '500', autocomplete: 'off' });
    const position = h('input', {
      name: 'position',
      id: 'policy-position',
      type: 'number',
      min: '1',
      step: '1',
      placeholder: String(rules.length + 1),
    });
    const errors = h('div');
    const newResult = h('div', { id: 'new-test' });

    /** @returns {ProposedRule & { position?: number }} */
    const newRule = () => {
      /** @type {Record<string, string>} */
      const match = {};
      for (const c of CONDITIONS) {
        const v = inputs[c.key]?.value.trim();
        if (v) match[c.key] = v;
      }
      if (agent.value) match.agent = agent.value;
      const pos = Number(position.value);
      return {
        action: /** @type {ProposedRule['action']} */ (action.value),
        match,
        ...(comment.value.trim() ? { comment: comment.value.trim() } : {}),
        ...(Number.isInteger(pos) && pos >= 1 ? { position: pos } : {}),
      };
    };
    /** The saved rules with the new one where it would go, and the index it has there. */
    const withNew = () => {
      const { position: pos, ...rule } = newRule();
      const set = rules.map(proposed);
      const at = pos ? Math.min(pos - 1, set.length) : set.length;
      set.splice(at, 0, rule);
      return { set, at };
    };
    /** @param {number} at */
    const proposedName = (at) => (/** @type {number | null} */ ruleId) => {
      if (ruleId === null) return 'no rule';
      const i = -ruleId - 1;
      if (i === at) return 'the new rule';
      const saved = rules[i < at ? i : i - 1];
      return saved ? `rule #${saved.id}` : `rule ${i + 1}`;
    };

    /** @type {HTMLButtonElement} */
    const testNew = button(
      'Dry run with this rule',
      () =>
        busy(testNew, errors, async () => {
          const { set, at } = withNew();
          const out = await testPolicies({ rules: set, days: Number(days.value || 7) });
          newResult.replaceChildren(testResult(out, proposedName(at)));
        }),
      '',
      { id: 'test-new' },
    );
    const submit = h('button', { type: 'submit', class: 'btn btn-primary', id: 'add-policy' }, 'Add rule…');
    const form = h(
      'form',
      {
        class: 'create-form',
        'aria-label': 'New rule',
        onsubmit: (e) => {
          e.preventDefault();
          // The rule is applied to the queue as it is saved: show what that does, then confirm.
          void busy(submit, errors, async () => {
            const { set, at } = withNew();
            const out = await testPolicies({ rules: set, days: Number(days.value || 7) });
            const rule = newRule();
            openDialog({
              title: `Add this ${rule.action} rule?`,
              content: [
                h('p', null, 'It is saved and applied to the quarantine queue at once:'),
                testResult(out, proposedName(at)),
              ],
              confirmLabel: 'Add rule',
              danger: out.queue.wouldReject.length > 0,
              onConfirm: async () => {
                const added = await addPolicy(rule);
                const n = added.applied.length;
                reload(
                  alertBox(
                    'success',
                    `Rule #${added.rule.id} added at position ${added.rule.position}; ${n} quarantined device${n === 1 ? '' : 's'} decided by the rules now.`,
                  ),
                );
              },
            });
          });
        },
      },
      h(
        'div',
        { class: 'filter-grid' },
        field('Action', action, 'what the rule does when it matches'),
        CONDITIONS.map((c) => field(c.label, inputs[c.key], c.hint)),
        field('Agent', agent),
        field('Comment', comment, 'kept as the reason of its decisions'),
        field('Position', position, 'empty: last; later rules move down'),
      ),
      h(
        'datalist',
        { id: 'policy-allowlists' },
        [...new Set(allowlists.map((a) => a.name))].map((n) => h('option', { value: n })),
      ),
      errors,
      h('div', { class: 'actions' }, submit, testNew),
      newResult,
    );

    page.append(
      section('Rules', rulesTable),
      h('details', { class: 'card create', open: rules.length === 0 }, h('summary', null, 'Add a rule'), form),
      section(
        'Dry run',
        h(
          'p',
          { class: 'muted' },
          'What the rules would decide now, for the quarantine queue, and for the devices first seen lately. Nothing is saved.',
        ),
        h('div', { class: 'actions' }, field('Recent devices: days', days), testSaved),
        savedResult,
      ),
      section(
        'Allowlists',
        table(
          [
            { label: 'Name', cell: (a) => h('span', { class: 'strong' }, a.name) },
            { label: 'Kind', cell: (a) => a.kind },
            { label: 'Entries', class: 'num', cell: (a) => String(a.entries) },
          ],
          allowlists,
          'No allowlist: import one with agent-gate policies allowlist import --name N --kind serial|uuid|mac --file F.csv.',
        ),
      ),
    );
  });
}

/** @param {PolicyRule} r */
function confirmRemove(r) {
  openDialog({
    title: `Remove rule #${r.id}?`,
    content: [
      h('p', null, 'Devices it decided keep their state; new devices are judged by the remaining rules.'),
      h('p', null, badge(r.action, `action-${r.action}`), ' ', matchChips(r.match), r.comment ? ` — ${r.comment}` : ''),
    ],
    confirmLabel: 'Remove',
    danger: true,
    onConfirm: async () => {
      await removePolicy(r.id);
      reload(alertBox('success', `Rule #${r.id} removed.`));
    },
  });
}
