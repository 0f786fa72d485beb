/**
 * A saved rule's conditions cannot be compiled: wrong shape, unknown field or operator, bad value
 * or unusable regular expression. Permanent: running the rule again will not help.
 */
export class InvalidRuleError extends Error {
  /** Index of the offending condition, or null when the rule as a whole is at fault. */
  readonly conditionIndex: number | null;

  constructor(message: string, conditionIndex: number | null = null) {
    super(conditionIndex === null ? message : `conditions[${conditionIndex}]: ${message}`);
    this.name = 'InvalidRuleError';
    this.conditionIndex = conditionIndex;
  }
}
