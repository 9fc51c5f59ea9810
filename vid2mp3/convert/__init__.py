"""Video to MP3: the convert function's use case (service), its ffmpeg command (plan), running it
(runner), checking its result (verify), its temporary files (workspace), the per-job lock (lock) and
the `aws:rmq` event (events). See vid2mp3.convert.service for the whole story."""
