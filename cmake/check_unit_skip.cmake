# A unit test that cannot run must say so and exit 77 (ctest's SKIP_RETURN_CODE), never pass;
# with CI=true the same skip must fail. PROGRAM is test_dedup, run with a PATH where
# redis-server cannot be found, so its Redis tests skip.
set(no_path PATH=${CMAKE_CURRENT_BINARY_DIR}/no-such-directory)

execute_process(COMMAND ${CMAKE_COMMAND} -E env --unset=CI ${no_path} ${PROGRAM}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 77)
  message(FATAL_ERROR "a skipped unit test exited ${rc}, not 77:\n${out}")
endif()
if(NOT out MATCHES "SKIPPED: redis-server")
  message(FATAL_ERROR "a skipped unit test did not say why (SKIPPED: ...):\n${out}")
endif()

execute_process(COMMAND ${CMAKE_COMMAND} -E env CI=true ${no_path} ${PROGRAM}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 1)
  message(FATAL_ERROR "with CI=true a skipped unit test exited ${rc}, not 1:\n${out}")
endif()
if(NOT out MATCHES "skipped with CI=true")
  message(FATAL_ERROR "with CI=true a skipped unit test did not say why it failed:\n${out}")
endif()
message(STATUS "skips exit 77, and fail with CI=true")
