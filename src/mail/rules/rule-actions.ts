import type { MessageAction } from '../message-actions.js';
import { InvalidRuleError } from './invalid-rule-error.js';

/** What a rule does to each message it matches. */
export const RULE_ACTION_TYPES = ['ARCHIVE', 'TRASH', 'DELETE', 'LABEL', 'MARK_READ'] as const;
export type RuleActionType = (typeof RULE_ACTION_TYPES)[number];

/**
 * One action of a saved rule. ARCHIVE only marks the message archived (the copy into archive
 * storage is the `archive_mails` job's work); LABEL adds `label`; DELETE removes the message for
 * good and cannot be combined with other actions.
 */
export interface RuleAction {
  type: RuleActionType;
  /** The label LABEL adds; absent for the other actions. */
  label?: string;
}

/** Most actions one rule may carry. */
export const MAX_RULE_ACTIONS = 10;
/** Longest label name. */
export const MAX_LABEL_LENGTH = 100;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function actionError(message: string, index: number): InvalidRuleError {
  return new InvalidRuleError(`actions[${index}]: ${message}`);
}

/**
 * Validates a rule's actions, as given by a client or read back from storage (any past shape),
 * and returns them normalised. Throws {@link InvalidRuleError} for an empty or oversized list, an
 * unknown type, a LABEL without a label (or another action with one), a repeated action, or
 * DELETE next to other actions.
 */
export function parseRuleActions(value: unknown): RuleAction[] {
  if (!Array.isArray(value)) throw new InvalidRuleError('actions must be a list');
  if (value.length === 0) throw new InvalidRuleError('a rule needs at least one action');
  if (value.length > MAX_RULE_ACTIONS) throw new InvalidRuleError(`a rule may have at most ${MAX_RULE_ACTIONS} actions`);
  const seen = new Set<string>();
  const actions = value.map((raw: unknown, index): RuleAction => {
    if (!isRecord(raw)) throw actionError('action must be an object', index);
    const { type, label } = raw;
    if (typeof type !== 'string' || !(RULE_ACTION_TYPES as readonly string[]).includes(type)) {
      throw actionError(`unknown action ${JSON.stringify(type)} (${RULE_ACTION_TYPES.join(', ')})`, index);
    }
    const action: RuleAction = { type: type as RuleActionType };
    if (type === 'LABEL') {
      if (typeof label !== 'string' || label.trim() === '') throw actionError('LABEL needs a non-empty label', index);
      if (label.length > MAX_LABEL_LENGTH) throw actionError(`label must be at most ${MAX_LABEL_LENGTH} characters`, index);
      action.label = label;
    } else if (label !== undefined && label !== null) {
      throw actionError(`${type} takes no label`, index);
    }
    const key = `${action.type}:${action.label ?? ''}`;
    if (seen.has(key)) throw actionError(`${action.type}${action.label ? ` "${action.label}"` : ''} is listed twice`, index);
    seen.add(key);
    return action;
  });
  if (actions.length > 1 && actions.some((action) => action.type === 'DELETE')) {
    throw new InvalidRuleError('DELETE removes the message, so it cannot be combined with other actions');
  }
  return actions;
}

/** The message action a rule action performs. */
export function messageActionOf(action: RuleAction): { action: MessageAction; label?: string } {
  return action.type === 'LABEL' ? { action: 'ADD_LABEL', label: action.label } : { action: action.type };
}
