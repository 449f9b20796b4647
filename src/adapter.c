/* adapter.c — placeholder, replaced by the adapter module */
typedef int hat_adapter_placeholder_;
