//! Remoting wire format (in progress).
