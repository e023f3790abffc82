// The state every auth form shares: field values, which fields the user has left (so a message
// appears after the first blur, not on the first keystroke), the messages per field and for the
// form, the busy flag, and a rate-limit countdown.
//
// Client-side checks come from a pure `check` function (authRules.ts); a server answer is turned
// into a field message or a form message by the caller and handed to `fail`.
import { useCallback, useEffect, useState, type FormEvent } from 'react';
import type { FieldErrors, Problem } from './authRules';
import { rateLimitMessage } from './authRules';

export function useForm<F extends string>(initial: Record<F, string>, check: (v: Record<F, string>) => FieldErrors<F>) {
  const [values, setValues] = useState(initial);
  const [touched, setTouched] = useState<Partial<Record<F, boolean>>>({});
  const [serverErrors, setServerErrors] = useState<FieldErrors<F>>({});
  const [formError, setFormError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  // When the server rate-limited us: the time the wait ends, so the message counts down.
  const [retryAt, setRetryAt] = useState<number | null>(null);
  const [, tick] = useState(0);

  useEffect(() => {
    if (retryAt === null) return;
    const timer = setInterval(() => {
      if (Date.now() >= retryAt) {
        setRetryAt(null);
        setFormError(null);
      } else {
        tick((n) => n + 1);
      }
    }, 1000);
    return () => clearInterval(timer);
  }, [retryAt]);

  const clientErrors = check(values);
  const errorOf = (f: F): string | undefined => serverErrors[f] ?? (touched[f] ? clientErrors[f] : undefined);

  const set = useCallback((f: F, v: string) => {
    setValues((old) => ({ ...old, [f]: v }));
    // The server's verdict was about the old value.
    setServerErrors((old) => {
      if (!(f in old)) return old;
      const next = { ...old };
      delete next[f];
      return next;
    });
  }, []);

  /** Props for a `Field`: value, change and blur handling, and its message. */
  const field = (f: F) => ({
    value: values[f],
    error: errorOf(f),
    onChange: (e: { target: { value: string } }) => set(f, e.target.value),
    onBlur: () => setTouched((t) => (t[f] ? t : { ...t, [f]: true })),
  });

  /**
   * Wraps a submit handler: validates every field first (and focuses the first bad one),
   * disables the form while `send` runs, and shows its failure.
   */
  const onSubmit =
    (send: (v: Record<F, string>) => Promise<Problem<F> | null>) =>
    async (e: FormEvent<HTMLFormElement>) => {
      e.preventDefault();
      if (busy) return;
      const form = e.currentTarget;
      const all = Object.fromEntries(Object.keys(values).map((k) => [k, true])) as Record<F, boolean>;
      setTouched(all);
      if (Object.keys(check(values)).length > 0) {
        requestAnimationFrame(() => form.querySelector<HTMLInputElement>('[aria-invalid="true"]')?.focus());
        return;
      }
      setBusy(true);
      setFormError(null);
      setServerErrors({});
      setRetryAt(null);
      let problem: Problem<F> | null;
      try {
        problem = await send(values);
      } catch (err) {
        problem = { message: `Something went wrong: ${err instanceof Error ? err.message : String(err)}` };
      }
      // On success the form usually unmounts; a state update then is harmless in React 19.
      setBusy(false);
      if (!problem) return;
      if (problem.field) {
        setServerErrors({ [problem.field]: problem.message } as FieldErrors<F>);
        requestAnimationFrame(() => form.querySelector<HTMLInputElement>('[aria-invalid="true"]')?.focus());
      } else {
        setFormError(problem.message);
        if (problem.retryAfterSecs !== undefined) setRetryAt(Date.now() + problem.retryAfterSecs * 1000);
      }
    };

  const message =
    retryAt !== null ? rateLimitMessage(Math.max(0, (retryAt - Date.now()) / 1000)) : formError;

  return { values, set, field, onSubmit, busy, formError: message, rateLimited: retryAt !== null };
}
