// The relay-message decoder's checks on what a big room sends: `member_count` beside a list
// that holds only some of the members.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { DecodeError, decodeMessage } from '../../src/protocol';

const member = (id: number) => ({
  id,
  name: `m${id}`,
  role: 'member',
  transport: 'websocket',
  ready: true,
  buffering: false,
  waited_for: false,
});

test('participants carry the room size in big rooms, and it must cover the list', () => {
  const ok = decodeMessage(JSON.stringify({ type: 'participants', room: 'r', members: [member(1)], member_count: 300 }));
  assert.equal(ok?.type, 'participants');
  assert.equal(ok?.type === 'participants' ? ok.member_count : -1, 300);
  const plain = decodeMessage(JSON.stringify({ type: 'participants', room: 'r', members: [member(1)] }));
  assert.equal(plain?.type === 'participants' ? plain.member_count : -1, undefined);
  assert.throws(
    () => decodeMessage(JSON.stringify({ type: 'participants', room: 'r', members: [member(1), member(2)], member_count: 1 })),
    DecodeError,
  );
  assert.throws(
    () => decodeMessage(JSON.stringify({ type: 'participants', room: 'r', members: [], member_count: -3 })),
    DecodeError,
  );
});
