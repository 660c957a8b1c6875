//! Sans-IO CTAPHID framing (CTAP 2.1 §11.2), both sides. No I/O, no await; time is injected.
