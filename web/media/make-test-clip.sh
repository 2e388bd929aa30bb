#!/usr/bin/env bash
# Regenerates the built-in test clip the relay serves at /media/test-clip.webm (committed, so
# a fresh machine needs no ffmpeg to run the relay). 90 s, 320x180, 24 fps, a keyframe every
# second (seeks land fast), a running clock and frame counter burnt in, so sync can be checked
# by eye (two screens side by side show the same frame number).
#
# No audio track, on purpose: the clip is what the browser tests play, and headless Chromium
# has no audio device. Its stand-in audio sink advances the media clock in ~160 ms steps at any
# rate other than 1.0, so `currentTime` becomes a 10 ms sawtooth the moment a player nudges its
# rate. Without audio the media clock is the wall clock: exact at every rate. Real browsers
# with a sound card update the audio clock every few milliseconds and the drift controller's
# envelope filter (web/src/video.ts) absorbs the rest.
set -euo pipefail
cd "$(dirname "$0")"
ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i "testsrc2=size=320x180:rate=24:duration=90" \
  -vf "drawtext=text='%{pts\:hms}  frame %{n}':x=8:y=h-28:fontsize=16:fontcolor=white:box=1:boxcolor=black@0.6" \
  -c:v libvpx-vp9 -b:v 40k -maxrate 60k -bufsize 120k -g 24 -keyint_min 24 -deadline good -cpu-used 4 -row-mt 1 \
  -an \
  -map_metadata -1 -fflags +bitexact -flags:v +bitexact \
  test-clip.webm
ls -l test-clip.webm
