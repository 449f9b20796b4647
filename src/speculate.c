/* speculate.c — placeholder, replaced by the speculative acceptance module */
typedef int hat_speculate_placeholder_;
