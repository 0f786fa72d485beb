import re2 from 're2-wasm';
import { InvalidRuleError } from './invalid-rule-error.js';
import { MAX_RULE_CONDITIONS, MAX_RULE_REGEX_LENGTH, type RuleConditions, type RuleMessageView } from './rule-conditions.js';

// re2-wasm is CommonJS; under NodeNext its default import is `module.exports`.
const { RE2 } = re2;

/** A validated rule, ready to test messages. */
export interface CompiledRule {
  /** Whether the message satisfies the rule at instant `now` (which AGE_DAYS is measured from). */
  matches(message: RuleMessageView, now: Date): boolean;
  /**
   * The most condition tests `matches` may run on the message: one per condition, and one per
   * recipient for each TO condition. Known before any test runs, so a caller can refuse a message
   * its budget cannot afford.
   */
  cost(message: RuleMessageView): number;
}

type Predicate = (message: RuleMessageView, now: Date) => boolean;

const DAY_MS = 86_400_000;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  return typeof value === 'string' ? `"${value}"` : String(value);
}

/** Builds the text test for one condition; the message values are lowercased at evaluation. */
function textTest(op: unknown, value: unknown, index: number): (text: string) => boolean {
  if (typeof value !== 'string') throw new InvalidRuleError('value must be a string', index);
  switch (op) {
    case 'EQUALS': {
      const expected = value.toLowerCase();
      return (text) => text.toLowerCase() === expected;
    }
    case 'CONTAINS': {
      if (value === '') throw new InvalidRuleError('CONTAINS needs a non-empty value', index);
      const needle = value.toLowerCase();
      return (text) => text.toLowerCase().includes(needle);
    }
    case 'MATCHES': {
      if (value === '') throw new InvalidRuleError('MATCHES needs a non-empty regular expression', index);
      if (value.length > MAX_RULE_REGEX_LENGTH) {
        throw new InvalidRuleError(`regular expression is longer than ${MAX_RULE_REGEX_LENGTH} characters`, index);
      }
      let regex: InstanceType<typeof RE2>;
      try {
        // RE2 runs in linear time, so a user's pattern cannot stall the worker; it requires 'u'.
        regex = new RE2(value, 'iu');
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        throw new InvalidRuleError(`invalid regular expression: ${reason}`, index);
      }
      return (text) => regex.test(text);
    }
    default:
      throw new InvalidRuleError(`unknown operator ${describe(op)} for a text field (CONTAINS, EQUALS, MATCHES)`, index);
  }
}

function numberValue(value: unknown, index: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new InvalidRuleError('value must be a non-negative finite number', index);
  }
  return value;
}

function booleanValue(value: unknown, index: number): boolean {
  if (typeof value !== 'boolean') throw new InvalidRuleError('value must be true or false', index);
  return value;
}

function comparison(op: unknown, threshold: number, index: number): (actual: number) => boolean {
  if (op === 'GT') return (actual) => actual > threshold;
  if (op === 'LT') return (actual) => actual < threshold;
  throw new InvalidRuleError(`unknown operator ${describe(op)} (GT, LT)`, index);
}

/** Validates one condition and turns it into a predicate. Input is treated as untrusted JSON. */
function compileCondition(condition: unknown, index: number): Predicate {
  if (!isRecord(condition)) throw new InvalidRuleError('condition must be an object', index);
  const { field, op, value } = condition;
  switch (field) {
    case 'FROM': {
      const test = textTest(op, value, index);
      return (m) => test(m.from ?? '');
    }
    case 'SUBJECT': {
      const test = textTest(op, value, index);
      return (m) => test(m.subject ?? '');
    }
    case 'TO': {
      const test = textTest(op, value, index);
      return (m) => m.to.some((address) => test(address));
    }
    case 'AGE_DAYS': {
      const test = comparison(op, numberValue(value, index), index);
      return (m, now) => {
        if (m.date === null || Number.isNaN(m.date.getTime())) return false;
        return test((now.getTime() - m.date.getTime()) / DAY_MS);
      };
    }
    case 'SIZE': {
      const test = comparison(op, numberValue(value, index), index);
      return (m) => test(m.size);
    }
    case 'HAS_ATTACHMENTS': {
      const expected = booleanValue(value, index);
      return (m) => m.hasAttachments === expected;
    }
    case 'IS_READ': {
      const expected = booleanValue(value, index);
      return (m) => m.isRead === expected;
    }
    case 'LABEL': {
      if (typeof value !== 'string' || value === '') throw new InvalidRuleError('value must be a non-empty label name', index);
      if (op === 'HAS') return (m) => m.labels.includes(value);
      if (op === 'NOT_HAS') return (m) => !m.labels.includes(value);
      throw new InvalidRuleError(`unknown operator ${describe(op)} for LABEL (HAS, NOT_HAS)`, index);
    }
    default:
      throw new InvalidRuleError(
        `unknown field ${describe(field)} (FROM, TO, SUBJECT, AGE_DAYS, SIZE, HAS_ATTACHMENTS, LABEL, IS_READ)`,
        index,
      );
  }
}

/**
 * Validates a saved rule's conditions and compiles them into a matcher. Rules come back from
 * storage as JSON written by any past version, so the shape is checked at run time despite the
 * type. Throws {@link InvalidRuleError} for an unknown `match`, an empty or oversized list, an
 * unknown field or operator, a wrongly typed or negative value, or a regular expression that is
 * invalid, unsupported by RE2 or longer than 500 characters.
 */
export function compileRule(conditions: RuleConditions): CompiledRule {
  const input: unknown = conditions;
  if (!isRecord(input)) throw new InvalidRuleError('rule conditions must be an object');
  const { match, conditions: list } = input;
  if (match !== 'ALL' && match !== 'ANY') throw new InvalidRuleError(`match must be ALL or ANY, got ${describe(match)}`);
  if (!Array.isArray(list)) throw new InvalidRuleError('conditions must be a list');
  if (list.length === 0) throw new InvalidRuleError('a rule needs at least one condition');
  if (list.length > MAX_RULE_CONDITIONS) throw new InvalidRuleError(`a rule may have at most ${MAX_RULE_CONDITIONS} conditions`);
  const predicates = list.map((condition: unknown, index) => compileCondition(condition, index));
  const toConditions = list.filter((condition: unknown) => isRecord(condition) && condition.field === 'TO').length;
  const otherConditions = list.length - toConditions;
  return {
    cost: (message) => otherConditions + toConditions * Math.max(1, message.to.length),
    matches:
      match === 'ALL'
        ? (message, now) => predicates.every((p) => p(message, now))
        : (message, now) => predicates.some((p) => p(message, now)),
  };
}
