// One labelled form input with its inline message, shared by the sign-in, sign-up and
// password forms so every field behaves the same: the message sits under the input, is tied to
// it for screen readers (aria-describedby / aria-invalid), and has a stable test id
// (`<testId>-error`).
import { useId, type InputHTMLAttributes } from 'react';

export function Field({
  label,
  testId,
  error,
  hint,
  ...input
}: {
  label: string;
  testId: string;
  error?: string;
  hint?: string;
} & Omit<InputHTMLAttributes<HTMLInputElement>, 'id'>) {
  const id = useId();
  const messageId = `${id}-message`;
  return (
    <div className={error ? 'field invalid' : 'field'}>
      <label htmlFor={id}>{label}</label>
      <input
        id={id}
        data-testid={testId}
        aria-invalid={error ? true : undefined}
        aria-describedby={error || hint ? messageId : undefined}
        {...input}
      />
      {error ? (
        <span id={messageId} className="field-error" data-testid={`${testId}-error`} role="alert">
          {error}
        </span>
      ) : (
        hint && (
          <span id={messageId} className="field-hint muted small">
            {hint}
          </span>
        )
      )}
    </div>
  );
}
