* Production plan (peak season): 4 products on 2 lines over 3 periods, free MPS.
* make_* = integer batches, setup_* = line set up for a product, stock_* = inventory carried.
NAME          production_plan_peak
ROWS
 N  total_cost
 E  balance_widget_1
 E  balance_widget_2
 E  balance_widget_3
 E  balance_gadget_1
 E  balance_gadget_2
 E  balance_gadget_3
 E  balance_sprocket_1
 E  balance_sprocket_2
 E  balance_sprocket_3
 E  balance_gizmo_1
 E  balance_gizmo_2
 E  balance_gizmo_3
 L  hours_lineA_1
 L  hours_lineA_2
 L  hours_lineA_3
 L  hours_lineB_1
 L  hours_lineB_2
 L  hours_lineB_3
 L  link_widget_lineA_1
 L  link_widget_lineA_2
 L  link_widget_lineA_3
 L  link_widget_lineB_1
 L  link_widget_lineB_2
 L  link_widget_lineB_3
 L  link_gadget_lineA_1
 L  link_gadget_lineA_2
 L  link_gadget_lineA_3
 L  link_gadget_lineB_1
 L  link_gadget_lineB_2
 L  link_gadget_lineB_3
 L  link_sprocket_lineA_1
 L  link_sprocket_lineA_2
 L  link_sprocket_lineA_3
 L  link_sprocket_lineB_1
 L  link_sprocket_lineB_2
 L  link_sprocket_lineB_3
 L  link_gizmo_lineA_1
 L  link_gizmo_lineA_2
 L  link_gizmo_lineA_3
 L  link_gizmo_lineB_1
 L  link_gizmo_lineB_2
 L  link_gizmo_lineB_3
 L  setups_lineA_1
 L  setups_lineA_2
 L  setups_lineA_3
 L  setups_lineB_1
 L  setups_lineB_2
 L  setups_lineB_3
COLUMNS
    make_widget_lineA_1       total_cost                183
    make_widget_lineA_1       balance_widget_1          37
    make_widget_lineA_1       hours_lineA_1             7
    make_widget_lineA_1       link_widget_lineA_1       1
    setup_widget_lineA_1      total_cost                420
    setup_widget_lineA_1      hours_lineA_1             11
    setup_widget_lineA_1      link_widget_lineA_1       -5
    setup_widget_lineA_1      setups_lineA_1            1
    make_widget_lineA_2       total_cost                183
    make_widget_lineA_2       balance_widget_2          37
    make_widget_lineA_2       hours_lineA_2             7
    make_widget_lineA_2       link_widget_lineA_2       1
    setup_widget_lineA_2      total_cost                420
    setup_widget_lineA_2      hours_lineA_2             11
    setup_widget_lineA_2      link_widget_lineA_2       -5
    setup_widget_lineA_2      setups_lineA_2            1
    make_widget_lineA_3       total_cost                183
    make_widget_lineA_3       balance_widget_3          37
    make_widget_lineA_3       hours_lineA_3             7
    make_widget_lineA_3       link_widget_lineA_3       1
    setup_widget_lineA_3      total_cost                420
    setup_widget_lineA_3      hours_lineA_3             11
    setup_widget_lineA_3      link_widget_lineA_3       -5
    setup_widget_lineA_3      setups_lineA_3            1
    make_widget_lineB_1       total_cost                171
    make_widget_lineB_1       balance_widget_1          37
    make_widget_lineB_1       hours_lineB_1             9
    make_widget_lineB_1       link_widget_lineB_1       1
    setup_widget_lineB_1      total_cost                420
    setup_widget_lineB_1      hours_lineB_1             11
    setup_widget_lineB_1      link_widget_lineB_1       -5
    setup_widget_lineB_1      setups_lineB_1            1
    make_widget_lineB_2       total_cost                171
    make_widget_lineB_2       balance_widget_2          37
    make_widget_lineB_2       hours_lineB_2             9
    make_widget_lineB_2       link_widget_lineB_2       1
    setup_widget_lineB_2      total_cost                420
    setup_widget_lineB_2      hours_lineB_2             11
    setup_widget_lineB_2      link_widget_lineB_2       -5
    setup_widget_lineB_2      setups_lineB_2            1
    make_widget_lineB_3       total_cost                171
    make_widget_lineB_3       balance_widget_3          37
    make_widget_lineB_3       hours_lineB_3             9
    make_widget_lineB_3       link_widget_lineB_3       1
    setup_widget_lineB_3      total_cost                420
    setup_widget_lineB_3      hours_lineB_3             11
    setup_widget_lineB_3      link_widget_lineB_3       -5
    setup_widget_lineB_3      setups_lineB_3            1
    make_gadget_lineA_1       total_cost                121
    make_gadget_lineA_1       balance_gadget_1          23
    make_gadget_lineA_1       hours_lineA_1             6
    make_gadget_lineA_1       link_gadget_lineA_1       1
    setup_gadget_lineA_1      total_cost                310
    setup_gadget_lineA_1      hours_lineA_1             8
    setup_gadget_lineA_1      link_gadget_lineA_1       -5
    setup_gadget_lineA_1      setups_lineA_1            1
    make_gadget_lineA_2       total_cost                121
    make_gadget_lineA_2       balance_gadget_2          23
    make_gadget_lineA_2       hours_lineA_2             6
    make_gadget_lineA_2       link_gadget_lineA_2       1
    setup_gadget_lineA_2      total_cost                310
    setup_gadget_lineA_2      hours_lineA_2             8
    setup_gadget_lineA_2      link_gadget_lineA_2       -5
    setup_gadget_lineA_2      setups_lineA_2            1
    make_gadget_lineA_3       total_cost                121
    make_gadget_lineA_3       balance_gadget_3          23
    make_gadget_lineA_3       hours_lineA_3             6
    make_gadget_lineA_3       link_gadget_lineA_3       1
    setup_gadget_lineA_3      total_cost                310
    setup_gadget_lineA_3      hours_lineA_3             8
    setup_gadget_lineA_3      link_gadget_lineA_3       -5
    setup_gadget_lineA_3      setups_lineA_3            1
    make_gadget_lineB_1       total_cost                133
    make_gadget_lineB_1       balance_gadget_1          23
    make_gadget_lineB_1       hours_lineB_1             5
    make_gadget_lineB_1       link_gadget_lineB_1       1
    setup_gadget_lineB_1      total_cost                310
    setup_gadget_lineB_1      hours_lineB_1             8
    setup_gadget_lineB_1      link_gadget_lineB_1       -5
    setup_gadget_lineB_1      setups_lineB_1            1
    make_gadget_lineB_2       total_cost                133
    make_gadget_lineB_2       balance_gadget_2          23
    make_gadget_lineB_2       hours_lineB_2             5
    make_gadget_lineB_2       link_gadget_lineB_2       1
    setup_gadget_lineB_2      total_cost                310
    setup_gadget_lineB_2      hours_lineB_2             8
    setup_gadget_lineB_2      link_gadget_lineB_2       -5
    setup_gadget_lineB_2      setups_lineB_2            1
    make_gadget_lineB_3       total_cost                133
    make_gadget_lineB_3       balance_gadget_3          23
    make_gadget_lineB_3       hours_lineB_3             5
    make_gadget_lineB_3       link_gadget_lineB_3       1
    setup_gadget_lineB_3      total_cost                310
    setup_gadget_lineB_3      hours_lineB_3             8
    setup_gadget_lineB_3      link_gadget_lineB_3       -5
    setup_gadget_lineB_3      setups_lineB_3            1
    make_sprocket_lineA_1     total_cost                227
    make_sprocket_lineA_1     balance_sprocket_1        41
    make_sprocket_lineA_1     hours_lineA_1             11
    make_sprocket_lineA_1     link_sprocket_lineA_1     1
    setup_sprocket_lineA_1    total_cost                515
    setup_sprocket_lineA_1    hours_lineA_1             13
    setup_sprocket_lineA_1    link_sprocket_lineA_1     -5
    setup_sprocket_lineA_1    setups_lineA_1            1
    make_sprocket_lineA_2     total_cost                227
    make_sprocket_lineA_2     balance_sprocket_2        41
    make_sprocket_lineA_2     hours_lineA_2             11
    make_sprocket_lineA_2     link_sprocket_lineA_2     1
    setup_sprocket_lineA_2    total_cost                515
    setup_sprocket_lineA_2    hours_lineA_2             13
    setup_sprocket_lineA_2    link_sprocket_lineA_2     -5
    setup_sprocket_lineA_2    setups_lineA_2            1
    make_sprocket_lineA_3     total_cost                227
    make_sprocket_lineA_3     balance_sprocket_3        41
    make_sprocket_lineA_3     hours_lineA_3             11
    make_sprocket_lineA_3     link_sprocket_lineA_3     1
    setup_sprocket_lineA_3    total_cost                515
    setup_sprocket_lineA_3    hours_lineA_3             13
    setup_sprocket_lineA_3    link_sprocket_lineA_3     -5
    setup_sprocket_lineA_3    setups_lineA_3            1
    make_sprocket_lineB_1     total_cost                241
    make_sprocket_lineB_1     balance_sprocket_1        41
    make_sprocket_lineB_1     hours_lineB_1             8
    make_sprocket_lineB_1     link_sprocket_lineB_1     1
    setup_sprocket_lineB_1    total_cost                515
    setup_sprocket_lineB_1    hours_lineB_1             13
    setup_sprocket_lineB_1    link_sprocket_lineB_1     -5
    setup_sprocket_lineB_1    setups_lineB_1            1
    make_sprocket_lineB_2     total_cost                241
    make_sprocket_lineB_2     balance_sprocket_2        41
    make_sprocket_lineB_2     hours_lineB_2             8
    make_sprocket_lineB_2     link_sprocket_lineB_2     1
    setup_sprocket_lineB_2    total_cost                515
    setup_sprocket_lineB_2    hours_lineB_2             13
    setup_sprocket_lineB_2    link_sprocket_lineB_2     -5
    setup_sprocket_lineB_2    setups_lineB_2            1
    make_sprocket_lineB_3     total_cost                241
    make_sprocket_lineB_3     balance_sprocket_3        41
    make_sprocket_lineB_3     hours_lineB_3             8
    make_sprocket_lineB_3     link_sprocket_lineB_3     1
    setup_sprocket_lineB_3    total_cost                515
    setup_sprocket_lineB_3    hours_lineB_3             13
    setup_sprocket_lineB_3    link_sprocket_lineB_3     -5
    setup_sprocket_lineB_3    setups_lineB_3            1
    make_gizmo_lineA_1        total_cost                149
    make_gizmo_lineA_1        balance_gizmo_1           29
    make_gizmo_lineA_1        hours_lineA_1             5
    make_gizmo_lineA_1        link_gizmo_lineA_1        1
    setup_gizmo_lineA_1       total_cost                365
    setup_gizmo_lineA_1       hours_lineA_1             9
    setup_gizmo_lineA_1       link_gizmo_lineA_1        -5
    setup_gizmo_lineA_1       setups_lineA_1            1
    make_gizmo_lineA_2        total_cost                149
    make_gizmo_lineA_2        balance_gizmo_2           29
    make_gizmo_lineA_2        hours_lineA_2             5
    make_gizmo_lineA_2        link_gizmo_lineA_2        1
    setup_gizmo_lineA_2       total_cost                365
    setup_gizmo_lineA_2       hours_lineA_2             9
    setup_gizmo_lineA_2       link_gizmo_lineA_2        -5
    setup_gizmo_lineA_2       setups_lineA_2            1
    make_gizmo_lineA_3        total_cost                149
    make_gizmo_lineA_3        balance_gizmo_3           29
    make_gizmo_lineA_3        hours_lineA_3             5
    make_gizmo_lineA_3        link_gizmo_lineA_3        1
    setup_gizmo_lineA_3       total_cost                365
    setup_gizmo_lineA_3       hours_lineA_3             9
    setup_gizmo_lineA_3       link_gizmo_lineA_3        -5
    setup_gizmo_lineA_3       setups_lineA_3            1
    make_gizmo_lineB_1        total_cost                139
    make_gizmo_lineB_1        balance_gizmo_1           29
    make_gizmo_lineB_1        hours_lineB_1             7
    make_gizmo_lineB_1        link_gizmo_lineB_1        1
    setup_gizmo_lineB_1       total_cost                365
    setup_gizmo_lineB_1       hours_lineB_1             9
    setup_gizmo_lineB_1       link_gizmo_lineB_1        -5
    setup_gizmo_lineB_1       setups_lineB_1            1
    make_gizmo_lineB_2        total_cost                139
    make_gizmo_lineB_2        balance_gizmo_2           29
    make_gizmo_lineB_2        hours_lineB_2             7
    make_gizmo_lineB_2        link_gizmo_lineB_2        1
    setup_gizmo_lineB_2       total_cost                365
    setup_gizmo_lineB_2       hours_lineB_2             9
    setup_gizmo_lineB_2       link_gizmo_lineB_2        -5
    setup_gizmo_lineB_2       setups_lineB_2            1
    make_gizmo_lineB_3        total_cost                139
    make_gizmo_lineB_3        balance_gizmo_3           29
    make_gizmo_lineB_3        hours_lineB_3             7
    make_gizmo_lineB_3        link_gizmo_lineB_3        1
    setup_gizmo_lineB_3       total_cost                365
    setup_gizmo_lineB_3       hours_lineB_3             9
    setup_gizmo_lineB_3       link_gizmo_lineB_3        -5
    setup_gizmo_lineB_3       setups_lineB_3            1
    stock_widget_1            total_cost                4.5
    stock_widget_1            balance_widget_1          -1
    stock_widget_1            balance_widget_2          1
    stock_widget_2            total_cost                4.5
    stock_widget_2            balance_widget_2          -1
    stock_widget_2            balance_widget_3          1
    stock_widget_3            total_cost                4.5
    stock_widget_3            balance_widget_3          -1
    stock_gadget_1            total_cost                3.75
    stock_gadget_1            balance_gadget_1          -1
    stock_gadget_1            balance_gadget_2          1
    stock_gadget_2            total_cost                3.75
    stock_gadget_2            balance_gadget_2          -1
    stock_gadget_2            balance_gadget_3          1
    stock_gadget_3            total_cost                3.75
    stock_gadget_3            balance_gadget_3          -1
    stock_sprocket_1          total_cost                5.25
    stock_sprocket_1          balance_sprocket_1        -1
    stock_sprocket_1          balance_sprocket_2        1
    stock_sprocket_2          total_cost                5.25
    stock_sprocket_2          balance_sprocket_2        -1
    stock_sprocket_2          balance_sprocket_3        1
    stock_sprocket_3          total_cost                5.25
    stock_sprocket_3          balance_sprocket_3        -1
    stock_gizmo_1             total_cost                4
    stock_gizmo_1             balance_gizmo_1           -1
    stock_gizmo_1             balance_gizmo_2           1
    stock_gizmo_2             total_cost                4
    stock_gizmo_2             balance_gizmo_2           -1
    stock_gizmo_2             balance_gizmo_3           1
    stock_gizmo_3             total_cost                4
    stock_gizmo_3             balance_gizmo_3           -1
RHS
    RHS00001                  balance_widget_1          120
    RHS00001                  balance_widget_2          140
    RHS00001                  balance_widget_3          110
    RHS00001                  balance_gadget_1          85
    RHS00001                  balance_gadget_2          95
    RHS00001                  balance_gadget_3          105
    RHS00001                  balance_sprocket_1        95
    RHS00001                  balance_sprocket_2        90
    RHS00001                  balance_sprocket_3        120
    RHS00001                  balance_gizmo_1           90
    RHS00001                  balance_gizmo_2           100
    RHS00001                  balance_gizmo_3           110
    RHS00001                  hours_lineA_1             70
    RHS00001                  hours_lineA_2             71
    RHS00001                  hours_lineA_3             67
    RHS00001                  hours_lineB_1             68
    RHS00001                  hours_lineB_2             69
    RHS00001                  hours_lineB_3             70
    RHS00001                  setups_lineA_1            3
    RHS00001                  setups_lineA_2            3
    RHS00001                  setups_lineA_3            3
    RHS00001                  setups_lineB_1            3
    RHS00001                  setups_lineB_2            3
    RHS00001                  setups_lineB_3            3
BOUNDS
 UI BND00001                  make_widget_lineA_1       5
 BV BND00001                  setup_widget_lineA_1
 UI BND00001                  make_widget_lineA_2       5
 BV BND00001                  setup_widget_lineA_2
 UI BND00001                  make_widget_lineA_3       5
 BV BND00001                  setup_widget_lineA_3
 UI BND00001                  make_widget_lineB_1       5
 BV BND00001                  setup_widget_lineB_1
 UI BND00001                  make_widget_lineB_2       5
 BV BND00001                  setup_widget_lineB_2
 UI BND00001                  make_widget_lineB_3       5
 BV BND00001                  setup_widget_lineB_3
 UI BND00001                  make_gadget_lineA_1       5
 BV BND00001                  setup_gadget_lineA_1
 UI BND00001                  make_gadget_lineA_2       5
 BV BND00001                  setup_gadget_lineA_2
 UI BND00001                  make_gadget_lineA_3       5
 BV BND00001                  setup_gadget_lineA_3
 UI BND00001                  make_gadget_lineB_1       5
 BV BND00001                  setup_gadget_lineB_1
 UI BND00001                  make_gadget_lineB_2       5
 BV BND00001                  setup_gadget_lineB_2
 UI BND00001                  make_gadget_lineB_3       5
 BV BND00001                  setup_gadget_lineB_3
 UI BND00001                  make_sprocket_lineA_1     5
 BV BND00001                  setup_sprocket_lineA_1
 UI BND00001                  make_sprocket_lineA_2     5
 BV BND00001                  setup_sprocket_lineA_2
 UI BND00001                  make_sprocket_lineA_3     5
 BV BND00001                  setup_sprocket_lineA_3
 UI BND00001                  make_sprocket_lineB_1     5
 BV BND00001                  setup_sprocket_lineB_1
 UI BND00001                  make_sprocket_lineB_2     5
 BV BND00001                  setup_sprocket_lineB_2
 UI BND00001                  make_sprocket_lineB_3     5
 BV BND00001                  setup_sprocket_lineB_3
 UI BND00001                  make_gizmo_lineA_1        5
 BV BND00001                  setup_gizmo_lineA_1
 UI BND00001                  make_gizmo_lineA_2        5
 BV BND00001                  setup_gizmo_lineA_2
 UI BND00001                  make_gizmo_lineA_3        5
 BV BND00001                  setup_gizmo_lineA_3
 UI BND00001                  make_gizmo_lineB_1        5
 BV BND00001                  setup_gizmo_lineB_1
 UI BND00001                  make_gizmo_lineB_2        5
 BV BND00001                  setup_gizmo_lineB_2
 UI BND00001                  make_gizmo_lineB_3        5
 BV BND00001                  setup_gizmo_lineB_3
 UP BND00001                  stock_widget_3            25
 UP BND00001                  stock_gadget_3            25
 UP BND00001                  stock_sprocket_3          25
 UP BND00001                  stock_gizmo_3             25
ENDATA
