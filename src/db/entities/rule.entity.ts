import { EntitySchema } from '@mikro-orm/core';

/** A saved rule: conditions over an account's messages and the actions applied to matches. */
export class Rule {
  id!: string;
  accountId!: string;
  ownerId!: string;
  name!: string;
  /** `RuleConditions` (src/mail/rules/rule-conditions.ts), checked when saved and again when run. */
  conditions!: Record<string, unknown>;
  /** Actions applied to every match, in order, e.g. `[{ "type": "LABEL", "label": "news" }, { "type": "MARK_READ" }]`. */
  actions!: Record<string, unknown>[];
  /** Cron pattern (SCHEDULE_TZ); the sidecar runs the rule with trigger RULE. Null: only on demand. */
  schedule: string | null = null;
  enabled = true;
  lastRunAt: Date | null = null;
  createdAt!: Date;
  updatedAt!: Date;
}

export const RuleSchema = new EntitySchema<Rule>({
  class: Rule,
  tableName: 'rule',
  properties: {
    id: { type: 'uuid', primary: true },
    accountId: { type: 'uuid', index: 'rule_account_idx' },
    ownerId: { type: 'string', length: 255, index: 'rule_owner_idx' },
    name: { type: 'string', length: 255 },
    conditions: { type: 'json' },
    actions: { type: 'json' },
    schedule: { type: 'string', length: 255, nullable: true },
    enabled: { type: 'boolean', default: true },
    lastRunAt: { type: 'datetime', columnType: 'timestamptz', nullable: true },
    createdAt: { type: 'datetime', columnType: 'timestamptz' },
    updatedAt: { type: 'datetime', columnType: 'timestamptz' },
  },
});
