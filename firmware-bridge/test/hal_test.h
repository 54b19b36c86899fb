#ifndef HAL_TEST_H
#define HAL_TEST_H
#include <stddef.h>
#include <stdint.h>
extern uint8_t test_tx[1 << 20];
extern size_t test_tx_len;
extern uint32_t test_time_ms;
void test_nv_clear(void);
#endif
