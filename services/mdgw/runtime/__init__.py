"""Shared shell plumbing: settings, logging, lifecycle, ZeroMQ sockets."""
