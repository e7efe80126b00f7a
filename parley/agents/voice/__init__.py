"""The realtime voice loop: VAD → STT → LLM → sentence chunker → TTS.

This package imports neither Django nor the Parley apps. The Channels consumer builds the
providers from the agent's configuration and hands them to :class:`CallSession`.
"""
