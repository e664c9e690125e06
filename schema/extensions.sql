-- erun_private holds what no client role may touch: the context signing
-- keys and pgcrypto, used only by SECURITY DEFINER functions.
CREATE SCHEMA erun_private;
REVOKE ALL ON SCHEMA erun_private FROM PUBLIC;

CREATE EXTENSION pgcrypto WITH SCHEMA erun_private;
