/** Refusals, for people. */
import { LockstepError } from '../client';

/** What a refused create, join or command means, in words for people. */
export function explainError(e: unknown): string {
  if (e instanceof LockstepError) {
    switch (e.code) {
      case 'room_not_found':
        return 'No room has this code. Check the link, or ask for a new one.';
      case 'wrong_password':
        return 'This room needs a password. Enter it and try again.';
      case 'room_full':
        return 'This room is full.';
      case 'room_locked':
        return 'This room is locked: nobody new can join right now.';
      case 'disconnected':
      case 'timeout':
        return `Not connected to the relay (${e.message}). It retries on its own; try again in a moment.`;
      case 'forbidden':
        return `Not allowed: ${e.message}`;
      case 'media_not_allowed':
        return `The relay does not allow that media URL (${e.message}).`;
      case 'too_many_rooms':
        return `You already have as many rooms as allowed (${e.message}).`;
      case 'rate_limited':
        return 'Slow down a little: too many messages.';
      default:
        return e.message;
    }
  }
  return e instanceof Error ? e.message : String(e);
}
