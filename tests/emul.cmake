# Link and compute emulation: determinism, serialisation, FIFO, jitter statistics, the hook.
hat_test(test_emul)
add_test(NAME emul COMMAND test_emul)
