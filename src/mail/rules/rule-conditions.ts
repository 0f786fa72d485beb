/** Text fields a condition can test; FROM and TO compare addresses. */
export type RuleTextField = 'FROM' | 'TO' | 'SUBJECT';

/**
 * Text test, case-insensitive. CONTAINS and EQUALS compare lowercased strings; MATCHES runs a
 * regular expression (RE2 syntax: no backreferences or lookaround, at most 500 characters). A
 * missing subject or sender reads as the empty string; TO holds when any recipient satisfies it.
 */
export interface RuleTextCondition {
  field: RuleTextField;
  op: 'CONTAINS' | 'EQUALS' | 'MATCHES';
  value: string;
}

/** Message age in days at evaluation time (fractions count); never holds for an undated message. */
export interface RuleAgeCondition {
  field: 'AGE_DAYS';
  op: 'GT' | 'LT';
  value: number;
}

/** Message size in bytes. */
export interface RuleSizeCondition {
  field: 'SIZE';
  op: 'GT' | 'LT';
  value: number;
}

/** Whether the message has attachments. */
export interface RuleAttachmentCondition {
  field: 'HAS_ATTACHMENTS';
  value: boolean;
}

/** Whether the message carries a label; label names compare exactly. */
export interface RuleLabelCondition {
  field: 'LABEL';
  op: 'HAS' | 'NOT_HAS';
  value: string;
}

/** Whether the message has been read. */
export interface RuleReadCondition {
  field: 'IS_READ';
  value: boolean;
}

/** One condition of a saved rule. */
export type RuleCondition =
  | RuleTextCondition
  | RuleAgeCondition
  | RuleSizeCondition
  | RuleAttachmentCondition
  | RuleLabelCondition
  | RuleReadCondition;

/** A rule's conditions as saved: all of them must hold (ALL) or at least one (ANY). */
export interface RuleConditions {
  match: 'ALL' | 'ANY';
  /** At least one, at most {@link MAX_RULE_CONDITIONS}. */
  conditions: RuleCondition[];
}

/** The message facts a rule is evaluated against. */
export interface RuleMessageView {
  /** Sender address. */
  from: string | null;
  /** Recipient addresses (To and Cc). */
  to: string[];
  subject: string | null;
  date: Date | null;
  /** Size of the raw message in bytes. */
  size: number;
  hasAttachments: boolean;
  labels: string[];
  isRead: boolean;
}

/** Longest pattern a MATCHES condition may carry. */
export const MAX_RULE_REGEX_LENGTH = 500;

/** Most conditions one rule may carry. */
export const MAX_RULE_CONDITIONS = 100;
