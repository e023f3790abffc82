// The signed-in user's "change password" dialog: current password, new password twice.
import { useState } from 'react';
import { changePassword } from './api';
import { checkPasswordChange, describeError, PASSWORD_MIN } from './authRules';
import { Field } from './Field';
import { useForm } from './useForm';

export function ChangePasswordDialog({ username, onClose }: { username: string; onClose: () => void }) {
  const form = useForm({ current: '', next: '', confirm: '' }, checkPasswordChange);
  const [done, setDone] = useState(false);
  const submit = form.onSubmit(async (v) => {
    try {
      await changePassword({ currentPassword: v.current, newPassword: v.next });
      setDone(true);
      return null;
    } catch (e) {
      return describeError('password', e);
    }
  });

  return (
    <div className="modal-backdrop" onClick={onClose} onKeyDown={(e) => e.key === 'Escape' && onClose()}>
      <div className="modal" role="dialog" aria-modal="true" aria-labelledby="change-password-title" onClick={(e) => e.stopPropagation()}>
        <h2 id="change-password-title">Change password</h2>
        {done ? (
          <>
            <p data-testid="change-password-done">Your password is changed. Use the new one next time you sign in.</p>
            <div className="modal-buttons">
              <button type="button" data-testid="change-password-close" onClick={onClose} autoFocus>
                Close
              </button>
            </div>
          </>
        ) : (
          <form className="auth-form" data-testid="change-password-form" onSubmit={submit} noValidate>
            {/* Lets password managers file the new password under the right account. */}
            <input type="text" name="username" autoComplete="username" value={username} readOnly hidden />
            <Field
              label="Current password"
              testId="change-password-current"
              type="password"
              autoComplete="current-password"
              autoFocus
              {...form.field('current')}
            />
            <Field
              label="New password"
              testId="change-password-new"
              type="password"
              autoComplete="new-password"
              hint={`At least ${PASSWORD_MIN} characters`}
              {...form.field('next')}
            />
            <Field
              label="Confirm new password"
              testId="change-password-confirm"
              type="password"
              autoComplete="new-password"
              {...form.field('confirm')}
            />
            {form.formError && (
              <p className="form-error" role="alert" data-testid="change-password-error">
                {form.formError}
              </p>
            )}
            <div className="modal-buttons">
              <button type="button" className="link" onClick={onClose}>
                Cancel
              </button>
              <button type="submit" data-testid="change-password-submit" disabled={form.busy}>
                {form.busy ? 'Saving…' : 'Change password'}
              </button>
            </div>
          </form>
        )}
      </div>
    </div>
  );
}
