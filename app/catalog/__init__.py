"""The video catalog: categories, videos, media at the VOD provider, playback and entitlements."""
