# The demo end to end as a test: the process must exit 0 AND its output must show the sample's
# alerts, a shadow rule, a muted flood rule and the dead letters, with no error log line and no
# sanitizer report. (A PASS_REGULAR_EXPRESSION alone would pass a demo that printed the right
# lines and then failed.)
execute_process(COMMAND ${TIDEWATCH} demo RESULT_VARIABLE rc OUTPUT_VARIABLE out
                ERROR_VARIABLE err TIMEOUT 110)
set(all "${out}${err}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "tidewatch demo exited with ${rc}\n${all}")
endif()
foreach(want "ALERT demo-15 [^\n]*scam.giveaway\\[high\\]" "SHADOW [^\n]*trial.gift_card"
             "MUTED  broad.prize" "dead letters +3" "muted rules +1")
  if(NOT all MATCHES "${want}")
    message(FATAL_ERROR "tidewatch demo output lacks /${want}/\n${all}")
  endif()
endforeach()
if(all MATCHES "\"level\":\"error\"|AddressSanitizer|runtime error")
  message(FATAL_ERROR "tidewatch demo logged an error or a sanitizer report\n${all}")
endif()
